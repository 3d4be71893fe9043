"""skhier's own NUTS densities for generalized linear mixed models."""
