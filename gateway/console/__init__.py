"""The web console at /console: keys, models, usage, live metrics, playground."""
