package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/presence-im/presence/queryapi/friendimport"
	"github.com/presence-im/presence/service/cli"
	"github.com/presence-im/presence/service/kafkaconn"
)

const importSummary = `presence import-friends: load an existing friend graph into Presence

Reads CSV lines "user,friend" (an optional first line "user,friend" is a
header; ids holding commas or quotes are quoted as in RFC 4180) and writes
both halves of each friendship to the presence.friends topic, which the
processor creates. Every line is checked before anything is written: a bad
line stops the import with its line number. Importing the same file again
is harmless. Progress goes to stderr about once a second.`

func runImportFriends(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("presence import-friends", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokers := fs.String("brokers", "", "Kafka seed brokers, comma-separated (required)")
	app := fs.String("app", "", "app the friendships belong to (required)")
	file := fs.String("file", "-", "CSV file to read, - for stdin")
	kafka := kafkaconn.Register(fs)
	cli.Usage(fs, importSummary)
	if err := cli.Parse(fs, args, getenv); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("presence import-friends takes no arguments, got %q (use --file)", fs.Args())
	case *brokers == "":
		return errors.New("--brokers is required")
	case *app == "":
		return errors.New("--app is required")
	}

	kopts, err := kafka.Opts(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}

	r := io.Reader(os.Stdin)
	name := "stdin"
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		r, name = f, *file
	}
	in, err := friendimport.Read(r, *app)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was written", name, err)
	}
	if err := kafka.Check(ctx, strings.Split(*brokers, ","), kopts); err != nil {
		return fmt.Errorf("%w; nothing was written", err)
	}
	fmt.Fprintf(stderr, "import-friends: %s holds %d friendships of app %s, writing %d records\n", name, in.Edges(), *app, 2*in.Edges())
	sum, err := friendimport.Import(ctx, friendimport.Config{Brokers: strings.Split(*brokers, ","), KafkaOpts: kopts, Progress: stderr}, in)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "import-friends: imported %s\n", sum)
	return nil
}
