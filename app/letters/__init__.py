"""Letters to officials: templates, supporter letters, petition delivery and the delivery log."""
