"""Deep Agents (`deepagents`) on a LangGraph checkpointer (`deepagents[:sqlite|postgres]`:
`backend.py`, worker in `worker.py`, the agent in `agent.py`)."""
