"""The blocked Gibbs engine: several factors, Polya-Gamma for binary outcomes."""
