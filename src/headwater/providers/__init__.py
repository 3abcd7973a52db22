"""Model providers: one module per vendor, all behind `ChatProvider` (see base.py)."""
