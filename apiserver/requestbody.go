package apiserver

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// withRequestBodyRead reads a write's body whole before the request goes on to audit, the
// in-flight limit and the handler, within the request's timeout, so that a client which
// announces a body and sends it slowly, or never, holds a connection and a goroutine but no
// in-flight slot: 200 such connections held every mutating slot, and every write got 429
// until they went away, which they never did.
//
// A body not read in time gets upstream's 504 (kube-apiserver answers a stalled body the same
// way, from its timeout filter after the request timeout, though it holds the slot until then);
// one beyond the size limit upstream's 413.
func (s *Server) withRequestBodyRead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := requestInfoFrom(r.Context())
		if r.Body == nil || r.Body == http.NoBody || !isMutating(ri.Verb) || isLongRunning(ri) {
			next.ServeHTTP(w, r)
			return
		}
		limit := s.cfg.MaxRequestBodyBytes
		if limit > 0 && r.ContentLength > limit {
			writeError(w, r, requestEntityTooLarge(limit))
			return
		}
		// The deadline is on the connection (a stream of it for HTTP/2); a reader blocked on a
		// silent client returns when it passes.
		rc := http.NewResponseController(w)
		deadlineSet := rc.SetReadDeadline(time.Now().Add(s.requestTimeout(r))) == nil
		body, err := readLimited(r.Body, limit)
		if deadlineSet {
			rc.SetReadDeadline(time.Time{})
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			writeError(w, r, apierrors.NewTimeoutError("request did not complete within requested timeout - context deadline exceeded", 0))
			return
		case errors.Is(err, errBodyTooLarge):
			writeError(w, r, requestEntityTooLarge(limit))
			return
		case err != nil:
			writeError(w, r, apierrors.NewBadRequest(err.Error()))
			return
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

var errBodyTooLarge = errors.New("request body too large")

// readLimited reads all of body, or fails with errBodyTooLarge past limit bytes (limit <= 0:
// no limit).
func readLimited(body io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		return io.ReadAll(body)
	}
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errBodyTooLarge
	}
	return data, nil
}

// requestTimeout is how long a non-streaming request may take: the server's request timeout,
// or less when the client asks for less with ?timeout=.
func (s *Server) requestTimeout(r *http.Request) time.Duration {
	timeout := s.cfg.RequestTimeout
	if v := r.URL.Query().Get("timeout"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 && d < timeout {
			timeout = d
		}
	}
	return timeout
}
