"""Who is calling: the directory of departments, principals and keys, and signed-request verification."""
