// Command gateway is the reference gateway server: it publishes the
// connects, disconnects and heartbeats that external IM gateways post over
// HTTP.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/gateway/ingest"
	"github.com/presence-im/presence/service/cli"
	"github.com/presence-im/presence/service/httpapi"
)

func main() { cli.Main("gateway", run) }

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	hostname, _ := os.Hostname()
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka seed brokers, comma-separated")
	addr := fs.String("addr", ":8090", "HTTP listen address")
	id := fs.String("id", hostname, "this gateway's id, stable across restarts")
	epoch := fs.String("epoch", "", "this gateway's boot epoch (random when empty)")
	lease := fs.Duration("gateway-lease", gateway.DefaultLease, "how long a heartbeat keeps a gateway's sessions alive")
	cli.Usage(fs, "gateway: publishes the connects, disconnects and heartbeats that IM gateways post over HTTP")
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	if *lease <= 0 {
		return errors.New("--gateway-lease must be positive")
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	pub, err := gateway.New(gateway.Brokers(strings.Split(*brokers, ",")...),
		gateway.ID(*id), gateway.Epoch(*epoch), gateway.Lease(*lease))
	if err != nil {
		return err
	}
	defer pub.Close()
	reg := httpapi.NewRegistry()
	h, err := ingest.New(pub, log, reg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	h.Register(mux)
	httpapi.Ops(mux, reg, pub.Ping)
	l, err := httpapi.Listen(*addr)
	if err != nil {
		return err
	}
	log.Info("gateway ready", "addr", l.Addr().String(), "id", pub.ID(), "epoch", pub.Epoch())
	return httpapi.Serve(ctx, l, httpapi.Envelope(mux, log), log)
}
