"""The parts of the `agent` node (engine/nodes/agent.py): tools, the text protocol, the calculator, checkpoints."""
