package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// limitedServer is just enough of a Server for its timeout filter.
func limitedServer(timeout time.Duration) *Server {
	return &Server{cfg: Config{RequestTimeout: timeout}}
}

func serveWithInfo(h http.Handler, method, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	rec := httptest.NewRecorder()
	withRequestInfoParsed(h).ServeHTTP(rec, req)
	return rec
}

func decodeStatus(t *testing.T, rec *httptest.ResponseRecorder) metav1.Status {
	t.Helper()
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return st
}

func TestRequestOverTimeoutGets504(t *testing.T) {
	s := limitedServer(50 * time.Millisecond)
	stuck := s.withTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		w.WriteHeader(http.StatusOK) // too late: discarded
	}))
	rec := serveWithInfo(stuck, "GET", "/api/v1/namespaces/default/pods")
	if rec.Code != http.StatusGatewayTimeout {
		t.Fatalf("code %d, want 504", rec.Code)
	}
	st := decodeStatus(t, rec)
	if st.Reason != metav1.StatusReasonTimeout || st.Message != "Timeout: request did not complete within requested timeout - context deadline exceeded" {
		t.Errorf("status %+v", st)
	}
}

func TestWatchIsNotCutByTheRequestTimeout(t *testing.T) {
	s := limitedServer(time.Millisecond)
	ctxSeen := make(chan context.Context, 1)
	h := s.withTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctxSeen <- r.Context()
		w.WriteHeader(http.StatusOK)
	}))
	rec := serveWithInfo(h, "GET", "/api/v1/pods?watch=1")
	if _, has := (<-ctxSeen).Deadline(); has || rec.Code != http.StatusOK {
		t.Errorf("watch got a deadline or code %d", rec.Code)
	}
}
