"""Provider adapters, one module per wire format, and the registry that names them."""
