"""Deployment rehearsals (`make heroku-check`)."""
