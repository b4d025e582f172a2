"""Room use cases: commands run against Space streams, invite links, the abandoned-Space sweeper."""
