"""The collapsed Gaussian engine: group effects integrated out exactly."""
