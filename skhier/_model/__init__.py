"""What the model is: its specification, likelihoods and priors."""
