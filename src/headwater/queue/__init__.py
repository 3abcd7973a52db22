"""Background jobs: durable records in the store, executed in-process (embedded) or by workers (scale-out)."""
