"""Business rules. Dialects and the native API call these; nothing else touches the store."""
