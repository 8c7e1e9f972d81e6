"""The image side consumer: image attachments of chat messages fetched, decoded and scored in a
consumer group of its own, into image verdicts beside the text verdicts (a text verdict never
waits for an image)."""
