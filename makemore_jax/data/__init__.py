"""Reading words, the vocabulary, encoding, splits, one host's part, packed and chunked rows."""
