package etcd3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// startSecuredEtcd runs an embedded etcd holding one key, and returns it.
func startSecuredEtcd(t *testing.T) *Embedded {
	t.Helper()
	e, err := StartEmbedded(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if _, err := e.Client.Put(context.Background(), "/registry/secrets/default/token", "secret"); err != nil {
		t.Fatal(err)
	}
	return e
}

// tryEtcd reads and writes through a gRPC client with tlsCfg (nil: plain text) and says what
// etcd answered; an error means the store was neither read nor written.
func tryEtcd(endpoint string, tlsCfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tlsCfg, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Get(ctx, "/registry/secrets/default/token"); err != nil {
		return err
	}
	_, err = c.Delete(ctx, "/registry/secrets/default/token")
	return err
}

// tryHTTP asks the endpoint's HTTP gateway for a range, in plain text and in TLS without a
// client certificate; it returns the first answer that came back with a body.
func tryHTTP(endpoint string) error {
	hostPort := strings.TrimPrefix(endpoint, "https://")
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, u := range []string{"http://" + hostPort + "/v3/kv/range", "https://" + hostPort + "/v3/kv/range"} {
		resp, err := insecure.Post(u, "application/json", strings.NewReader(`{"key":"L3JlZ2lzdHJ5","range_end":"L3JlZ2lzdHJ6"}`))
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return fmt.Errorf("%s answered %d: %s", u, resp.StatusCode, body)
		}
	}
	return nil
}

func TestEmbeddedEtcdRefusesClientsWithoutItsCertificate(t *testing.T) {
	e := startSecuredEtcd(t)
	endpoint := e.Endpoints[0]
	if !strings.HasPrefix(endpoint, "https://127.0.0.1:") {
		t.Fatalf("endpoint = %s, want TLS on loopback", endpoint)
	}

	if err := tryEtcd(strings.Replace(endpoint, "https://", "http://", 1), nil); err == nil {
		t.Error("a plain-text client read and wrote the store")
	}
	if err := tryEtcd(endpoint, &tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Error("a TLS client without a certificate read and wrote the store")
	}
	// A certificate from another CA (another embedded etcd's) is no better than none.
	other := startSecuredEtcd(t)
	otherCert, err := tls.LoadX509KeyPair(other.ClientCertFile, other.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := tryEtcd(endpoint, &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{otherCert}}); err == nil {
		t.Error("a client with another CA's certificate read and wrote the store")
	}
	if err := tryHTTP(endpoint); err != nil {
		t.Error(err)
	}

	// The API server's client certificate is let in.
	c, err := NewClient(e.Endpoints, e.CAFile, e.ClientCertFile, e.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Get(context.Background(), "/registry/secrets/default/token")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the API server's certificate: %v, %v", resp, err)
	}
}

func TestEmbeddedEtcdKeysAreReadableByTheirOwnerOnly(t *testing.T) {
	e := startSecuredEtcd(t)
	dir := filepath.Dir(e.CAFile)
	for _, name := range []string{dir, filepath.Join(dir, etcdCAKeyFileName), filepath.Join(dir, etcdServerKeyFileName),
		filepath.Join(dir, etcdPeerKeyFileName), e.ClientKeyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want nothing for group and others", name, fi.Mode().Perm())
		}
	}
}

// nobodyEnv names the embedded etcd a re-run of this test binary as nobody attacks.
const nobodyEnv = "SKIFF_TEST_ETCD_AS_NOBODY"

func TestEmbeddedEtcdCannotBeReadOrWrittenByAnotherLocalUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a client as nobody")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	e := startSecuredEtcd(t)
	// Every directory up to the keys open to others, so that only the PKI's own modes stand
	// between nobody and the keys, as on a host whose data directory is world-readable.
	for d := filepath.Dir(filepath.Dir(e.CAFile)); d != "/" && strings.HasPrefix(d, os.TempDir()); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// The test binary, where nobody may run it (go test keeps it in a directory of root's).
	binDir, err := os.MkdirTemp("", "etcd-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(binDir)
	os.Chmod(binDir, 0o755)
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "etcd3.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestAttackEmbeddedEtcdAsNobody$", "-test.v")
	cmd.Env = append(os.Environ(), nobodyEnv+"="+strings.Join([]string{e.Endpoints[0], e.ClientKeyFile, e.CAFile}, ","))
	cmd.Dir = binDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestAttackEmbeddedEtcdAsNobody") {
		t.Fatalf("the attack did not run:\n%s", out)
	}
	got, err := e.Client.Get(context.Background(), "/registry/secrets/default/token")
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("the key after nobody's attempts: %v, %v", got, err)
	}
}

// TestAttackEmbeddedEtcdAsNobody is run by the test above as nobody: it passes when the store
// could neither be read nor written, and is skipped in an ordinary run.
func TestAttackEmbeddedEtcdAsNobody(t *testing.T) {
	target := os.Getenv(nobodyEnv)
	if target == "" {
		t.Skip("run by TestEmbeddedEtcdCannotBeReadOrWrittenByAnotherLocalUser")
	}
	parts := strings.Split(target, ",")
	endpoint, keyFile := parts[0], parts[1]
	if os.Geteuid() == 0 {
		t.Fatal("running as root")
	}
	if _, err := os.ReadFile(keyFile); !errors.Is(err, os.ErrPermission) {
		t.Errorf("reading the client key: %v, want permission denied", err)
	}
	if err := tryEtcd(strings.Replace(endpoint, "https://", "http://", 1), nil); err == nil {
		t.Error("read and wrote the store in plain text")
	}
	if err := tryEtcd(endpoint, &tls.Config{InsecureSkipVerify: true}); err == nil {
		t.Error("read and wrote the store over TLS without a certificate")
	}
	if err := tryHTTP(endpoint); err != nil {
		t.Error(err)
	}
}
