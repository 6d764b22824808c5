package etcd3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactRevKey is upstream's key: its value is the last revision compacted to and its etcd
// version counts compactions, which lets several API servers (skiff's or kube-apiserver's)
// share one etcd and compact it once per interval between them.
const compactRevKey = "compact_rev_key"

// StartCompactor compacts etcd every interval to the revision etcd was at one interval earlier,
// so that interval of history stays available to watches and exact reads, until ctx is done.
// It returns at once; the first compaction happens two intervals from now (the first tick
// only records a revision).
//
// How API servers agree, as upstream: each remembers the version of compactRevKey it last saw.
// On its tick it writes the revision it recorded one interval ago under compactRevKey, only if
// the key's version is still the one it remembers (a transaction). The winner compacts; a loser
// adopts the key's new version and tries again next tick. So one server compacts per interval
// and another takes over within two intervals when it stops.
func StartCompactor(ctx context.Context, client *clientv3.Client, interval time.Duration) {
	if interval <= 0 {
		return
	}
	go func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		var version, rev int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			var err error
			version, rev, err = compact(ctx, client, version, rev)
			if err != nil && ctx.Err() == nil {
				slog.Error("etcd compaction failed", "endpoints", client.Endpoints(), "err", err)
			}
		}
	}()
}

// compact compacts to rev if this server wins the round for expectVersion, and returns the
// version of compactRevKey to expect next time and the current revision (to compact to next
// time). Losing the round is not an error.
func compact(ctx context.Context, client *clientv3.Client, expectVersion, rev int64) (int64, int64, error) {
	resp, err := client.Txn(ctx).If(
		clientv3.Compare(clientv3.Version(compactRevKey), "=", expectVersion),
	).Then(
		clientv3.OpPut(compactRevKey, strconv.FormatInt(rev, 10)), // bumps the key's version
	).Else(
		clientv3.OpGet(compactRevKey),
	).Commit()
	if err != nil {
		return expectVersion, rev, fmt.Errorf("compaction round: %w", err)
	}
	current := resp.Header.Revision
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return 0, current, nil // deleted by hand: start the count again
		}
		return kvs[0].Version, current, nil
	}
	if rev == 0 {
		return expectVersion + 1, current, nil // nothing recorded yet (first round)
	}
	start := time.Now()
	if _, err := client.Compact(ctx, rev); errors.Is(err, rpctypes.ErrCompacted) {
		return expectVersion + 1, current, nil // compacted further already (by hand, or etcd itself)
	} else if err != nil {
		return expectVersion + 1, current, fmt.Errorf("compacting to revision %d: %w", rev, err)
	}
	slog.Info("etcd compacted", "revision", rev, "current", current, "took", time.Since(start).Round(time.Millisecond))
	return expectVersion + 1, current, nil
}
