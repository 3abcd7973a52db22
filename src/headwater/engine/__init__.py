"""The execution engine: events, and (with the flow engine) graphs, scheduler and nodes."""
