"""Bundles for machines without network: pinned models as one tar stream (bundle.py: export and import, every
byte checked against the index's pins; tarstream.py: the stream). A feature built on cache/'s primitives, beside
download/: it reads and writes huggingface_hub's layout through cache/ and never opens a socket."""
