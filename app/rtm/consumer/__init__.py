"""The Spark consumers: windowed aggregates and threshold alerts over the metric topics."""
