"""Everything that touches bytes at rest: the data root, names, video I/O, catalog and shards."""
