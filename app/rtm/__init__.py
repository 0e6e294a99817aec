"""rtm: real-time server monitoring over Kafka and Spark."""
