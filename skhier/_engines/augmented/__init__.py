"""Student-t noise as a scale mixture of normals."""
