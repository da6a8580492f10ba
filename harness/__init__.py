"""durabench: benchmark and chaos-test durable execution for long-running AI agents."""

__version__ = "0.1.0"
