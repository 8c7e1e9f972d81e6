"""Platform adapters: each turns its platform's chat events into ChatMessages for the publisher."""
