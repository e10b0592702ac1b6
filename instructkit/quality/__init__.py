"""Quality: validate, stats, filters and reports over records."""
