"""The moderation domain: mutes, removals, blocks and reports. Pure."""
