"""HTTP plumbing shared by every domain's router: dependencies and problem responses."""
