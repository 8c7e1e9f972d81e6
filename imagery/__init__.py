"""Image models: decoding untrusted images and scoring them; no Kafka."""
