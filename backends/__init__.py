"""Backend adapters: one module (or package) per durable-execution substrate."""
