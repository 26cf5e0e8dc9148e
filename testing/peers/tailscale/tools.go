//go:build tools

// The commands this module builds, so `go mod tidy` keeps their dependencies.
package tools

import (
	_ "tailscale.com/cmd/tailscale"
	_ "tailscale.com/cmd/tailscaled"
)
