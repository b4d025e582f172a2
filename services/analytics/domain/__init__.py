"""Analytics' figures are `libs.analytics.space_figures`: one implementation, shared with `podium report`."""
