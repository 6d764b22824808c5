package apiserver_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/skiff-dev/skiff/apiserver/apiservertest"
)

// The official non-Go clients run the same program (apiserver/testdata/clients/crud.py and
// js/crud.mjs): create a namespace and a ConfigMap, get it, list it by label, merge-patch it,
// watch from the list's resourceVersion (the patch replays as MODIFIED, a patch made
// meanwhile arrives live), delete it. Each prints one line per step, the same lines in both
// languages; clientTranscript is what a user of either sees.
var clientTranscript = []string{
	`namespace: created NS`,
	`create: configmap crud uid=true data.a=b`,
	`get: configmap crud data.a=b`,
	`list: app=crud -> crud`,
	`patch: merge data=[["c","d"]] labels.patched=yes`,
	`watch: MODIFIED crud data=[["c","d"]]`,
	`watch: MODIFIED crud data=[["c","d"],["e","f"]]`,
	`delete: configmap crud, then get -> 404`,
	`cleanup: deleted namespace NS`,
	`done: ok`,
}

// Debian's python3-kubernetes installs for the system Python, not the pyenv one on PATH.
const systemPython = "/usr/bin/python3"

func TestPythonClientCRUDAndWatch(t *testing.T) {
	if out, err := exec.Command(systemPython, "-c", "import kubernetes").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import kubernetes (apt-get install python3-kubernetes; .ci/run does): %v\n%s",
			systemPython, err, out)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "clients", "crud.py"))
	if err != nil {
		t.Fatal(err)
	}
	runClientProgram(t, "crud-py-", systemPython, script)
}

func TestJavaScriptClientCRUDAndWatch(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on PATH (apt-get install nodejs; .ci/run does)")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "clients", "js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@kubernetes", "client-node", "package.json")); err != nil {
		t.Skipf("@kubernetes/client-node is not installed: run `npm ci` in %s (.ci/run does)", dir)
	}
	runClientProgram(t, "crud-js-", node, filepath.Join(dir, "crud.mjs"))
}

// runClientProgram starts a server, runs `interpreter script KUBECONFIG` against it and
// checks that the program printed clientTranscript, its namespace (nsPrefix + random)
// standing for NS.
func runClientProgram(t *testing.T, nsPrefix, interpreter, script string) {
	lines := runClient(t, interpreter, script)
	ns := regexp.MustCompile(regexp.QuoteMeta(nsPrefix) + `[0-9a-f]{6}`)
	for i := range lines {
		lines[i] = ns.ReplaceAllString(lines[i], "NS")
	}
	if got, want := strings.Join(lines, "\n"), strings.Join(clientTranscript, "\n"); got != want {
		t.Errorf("the client printed\n%s\nwant\n%s", got, want)
	}
}

// runClient starts a server, runs `interpreter script KUBECONFIG` against it and returns the
// lines the program printed after the first, which names the client's version.
func runClient(t *testing.T, interpreter, script string) []string {
	t.Helper()
	s := apiservertest.Start(t)
	kubeconfig := filepath.Join(s.DataDir, "kubeconfig")
	if err := s.PKI.WriteKubeconfig(kubeconfig, s.URL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, interpreter, script, kubeconfig)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("%s %s:\n%s%s", filepath.Base(interpreter), filepath.Base(script), out, stderr.String())
	if err != nil {
		t.Fatalf("%s %s: %v", interpreter, script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "client: ") {
		t.Fatalf("first line is not the client's version: %q", lines)
	}
	return lines[1:]
}

// customObjectsTranscript is what apiserver/testdata/clients/customobjects.py prints: the
// Python client's CustomObjectsApi on a CronTab CustomResourceDefinition.
var customObjectsTranscript = []string{
	`crd: crontabs.stable.example.com established, accepted plural crontabs`,
	`create: crontab nightly image=busybox generation=1`,
	`get: CronTab nightly cronSpec=0 0 * * *`,
	`list: app=hourly -> hourly`,
	`list: all namespaces -> hourly,nightly`,
	`invalid: 422 Unprocessable Entity`,
	`patch: replicas=3 generation=2`,
	`status: replicas=3 generation=2`,
	`watch: MODIFIED MODIFIED DELETED`,
	`delete: crontab nightly, then get -> 404`,
	`cleanup: deleted the CRD, crontabs -> 404`,
	`done: ok`,
}

func TestPythonClientCustomObjects(t *testing.T) {
	if out, err := exec.Command(systemPython, "-c", "import kubernetes").CombinedOutput(); err != nil {
		t.Skipf("%s cannot import kubernetes (apt-get install python3-kubernetes; .ci/run does): %v\n%s",
			systemPython, err, out)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "clients", "customobjects.py"))
	if err != nil {
		t.Fatal(err)
	}
	lines := runClient(t, systemPython, script)
	if got, want := strings.Join(lines, "\n"), strings.Join(customObjectsTranscript, "\n"); got != want {
		t.Errorf("the client printed\n%s\nwant\n%s", got, want)
	}
}
