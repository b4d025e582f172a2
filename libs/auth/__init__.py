"""Bearer tokens: minting and verifying the JWTs that carry a caller's identity."""
