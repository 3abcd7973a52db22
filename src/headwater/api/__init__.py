"""HTTP layer: native management API and the public API dialects."""
