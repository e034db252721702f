package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/presence-im/presence/gateway"
	"github.com/presence-im/presence/schemas"
	pb "github.com/presence-im/presence/schemas/presencepb"
)

// rawAnnouncer is the fanout scenario's baseline: the work between a
// user's connect and its friends' gateways reading the notification, done
// in line by the client with the raw tools, as a hand-written service
// would do it at the least. See announce.
type rawAnnouncer struct {
	plan   fanoutPlan
	epochs []string
	prod   *kgo.Client
	cons   *kgo.Client
	rdb    redis.UniversalClient
	stop   context.CancelFunc
	ended  chan struct{}
}

// newRawAnnouncer starts a plain consumer of the notify topic, from its
// end, that hands what it reads to t.
func newRawAnnouncer(ctx context.Context, k *kafka, plan fanoutPlan, pubs []*gateway.Publisher, t *tracker, rdb redis.UniversalClient) (*rawAnnouncer, error) {
	a := &rawAnnouncer{plan: plan, rdb: rdb, ended: make(chan struct{})}
	for _, p := range pubs {
		a.epochs = append(a.epochs, p.Epoch())
	}
	ends, err := k.ends(ctx, schemas.NotifyTopic)
	if err != nil {
		return nil, err
	}
	from := map[int32]kgo.Offset{}
	for p, end := range ends {
		from[p] = kgo.NewOffset().At(end)
	}
	if a.prod, err = k.client(); err != nil {
		return nil, err
	}
	if a.cons, err = k.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{schemas.NotifyTopic: from})); err != nil {
		a.prod.Close()
		return nil, err
	}
	ctx, a.stop = context.WithCancel(ctx)
	go func() {
		defer close(a.ended)
		for {
			fetches := a.cons.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fetches.EachRecord(func(r *kgo.Record) {
				n := new(pb.Notification)
				if proto.Unmarshal(r.Value, n) == nil {
					t.arrived(n)
				}
			})
		}
	}()
	return a, nil
}

func (a *rawAnnouncer) close() {
	a.stop()
	<-a.ended
	a.cons.Close()
	a.prod.Close()
}

// announce makes user i come online the raw way, in line:
//
//  1. its connect record (the same SessionEvent the gateway library
//     writes) produced to presence.sessions with a plain franz-go client,
//     acknowledged by all in-sync replicas;
//  2. one pipeline: HSET of the session's field in the user's hash, and
//     SMEMBERS of the user's friends;
//  3. one pipeline of HGETALL of every friend's hash, the online ones'
//     sessions grouped by gateway;
//  4. one presence.notify record per gateway (the same Notification the
//     processor writes), produced and acknowledged;
//
// and then a plain consumer reads them. Left out, as the raw tools do not
// need them: the consumer group between the gateway and the processor,
// the versioned apply and visible-state comparison (apply.lua), the
// subscribers' audience, marking the announcement as told, checkpoints
// and commits.
func (a *rawAnnouncer) announce(ctx context.Context, i int) error {
	user, gw := a.plan.user(i), fanoutGateway(i)
	session, at := user+"-raw", time.Now()
	ev := &pb.SessionEvent{Type: pb.EventType_EVENT_TYPE_CONNECT, App: app, User: user, Session: session,
		Device: &pb.Device{Type: "ios"}, Gateway: gw, GatewayEpoch: a.epochs[i%fanoutGateways], TimestampMs: at.UnixMilli()}
	value, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	if err := a.prod.ProduceSync(ctx, &kgo.Record{Topic: schemas.SessionsTopic,
		Key: []byte(schemas.SessionKey(app, user, session)), Value: value}).FirstErr(); err != nil {
		return fmt.Errorf("producing the connect: %w", err)
	}
	var friends *redis.StringSliceCmd
	if _, err := a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, userKey(user), sessionField(session), rawSession("ios", "", gw, a.epochs[i%fanoutGateways], at))
		friends = p.SMembers(ctx, friendsKey(user))
		return nil
	}); err != nil {
		return fmt.Errorf("writing the session and reading the friends: %w", err)
	}
	names := friends.Val()
	hashes := make([]*redis.MapStringStringCmd, len(names))
	if _, err := a.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, f := range names {
			hashes[j] = p.HGetAll(ctx, userKey(f))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("reading the friends' sessions: %w", err)
	}
	byGateway := map[string][]*pb.Recipient{}
	for j, h := range hashes {
		for field, value := range h.Val() {
			if field[0] == 's' {
				g := sessionGateway(value)
				byGateway[g] = append(byGateway[g], &pb.Recipient{User: names[j], Session: field[1:]})
			}
		}
	}
	subject := &pb.UserStatus{User: user, Online: true, Sessions: []*pb.Session{{
		Session: session, Device: &pb.Device{Type: "ios"}, Gateway: gw, ConnectedAtMs: at.UnixMilli(),
	}}}
	recs := make([]*kgo.Record, 0, len(byGateway))
	for g, recipients := range byGateway {
		value, err := proto.Marshal(&pb.Notification{Type: pb.NotificationType_NOTIFICATION_TYPE_PRESENCE, App: app,
			Subject: subject, Gateway: g, Recipients: recipients, TimestampMs: time.Now().UnixMilli()})
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: schemas.NotifyTopic, Key: []byte(schemas.NotifyKey(g)), Value: value})
	}
	if err := a.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producing the notifications: %w", err)
	}
	return nil
}
