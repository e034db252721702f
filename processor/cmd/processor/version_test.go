package main

import (
	"testing"

	"github.com/presence-im/presence/service/cli/clitest"
)

// TestVersion: --version stops processor before it reads any other setting or
// reaches Kafka or Redis (cli.Main then prints the version and exits 0),
// and --help lists it.
func TestVersion(t *testing.T) {
	clitest.Version(t, "processor", run, "--brokers", "127.0.0.1:1")
}
