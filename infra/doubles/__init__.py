"""Test and demo doubles: stand-ins for the outside world (the mock provider). Nothing in the request
path imports them."""
