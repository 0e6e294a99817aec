"""The producer: CSV replay or live host metrics, published as JSON records to Kafka."""
