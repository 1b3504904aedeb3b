"""Wire protocols: pure translations between a client's protocol and our runs (`base`)."""
