"""District reporting and park offsets: rollups, exports, reduction batches, parks, liability."""
