"""The simulated LLM provider and the tool service: each runs as its own process."""
