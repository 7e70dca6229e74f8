"""The platform's own administration and oversight: the directory (departments, principals, keys)
and reading audit chains, each operation behind the policies."""
