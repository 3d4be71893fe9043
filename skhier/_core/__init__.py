"""What every estimator shares: the fit skeleton, reports and the Bayesian workflow."""
