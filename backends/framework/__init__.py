"""What the agent-framework backends share (see the modules); kept empty for the Temporal
sandbox, which imports this package with the workflow modules."""
