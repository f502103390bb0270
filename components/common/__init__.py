"""What several steps share, in wings by concern: settings/, tracking/, data/; storage, errors,
progress and CLI plumbing at this level."""
