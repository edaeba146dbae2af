"""The thin command layer: one module per subcommand; flags -> library call -> records out."""
