// Everyday CRUD and a watch with the official JavaScript client (@kubernetes/client-node).
//
// Usage: node crud.mjs KUBECONFIG   (after `npm ci` in this folder)
//
// Prints one line per step ("step: detail") and exits non-zero on the first failure.
// apiserver/clients_test.go runs it against a test API server and reads those lines.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';

const step = (name, detail) => console.log(`${name}: ${detail}`);
const check = (cond, what) => {
  if (!cond) throw new Error(what);
};
const sorted = (data) => JSON.stringify(Object.entries(data ?? {}).sort());

async function main(kubeconfig) {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfig);
  const v1 = kc.makeApiClient(k8s.CoreV1Api);
  const pkg = JSON.parse(readFileSync(new URL('./node_modules/@kubernetes/client-node/package.json', import.meta.url)));
  step('client', `@kubernetes/client-node ${pkg.version} on node ${process.version}`);

  const ns = 'crud-js-' + randomBytes(3).toString('hex');
  await v1.createNamespace({ body: { metadata: { name: ns } } });
  step('namespace', `created ${ns}`);

  const cm = await v1.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: 'crud', labels: { app: 'crud' } }, data: { a: 'b' } },
  });
  check(cm.metadata?.resourceVersion, 'created object has no resourceVersion');
  await v1.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: 'other', labels: { app: 'else' } }, data: { x: 'y' } },
  });
  step('create', `configmap crud uid=${Boolean(cm.metadata.uid)} data.a=${cm.data.a}`);

  const got = await v1.readNamespacedConfigMap({ name: 'crud', namespace: ns });
  check(sorted(got.data) === sorted({ a: 'b' }), `get returned data ${JSON.stringify(got.data)}`);
  check(got.metadata.labels?.app === 'crud', `get returned labels ${JSON.stringify(got.metadata.labels)}`);
  step('get', `configmap crud data.a=${got.data.a}`);

  const list = await v1.listNamespacedConfigMap({ namespace: ns, labelSelector: 'app=crud' });
  const names = list.items.map((i) => i.metadata.name);
  check(names.join(',') === 'crud', `list app=crud returned ${names}`);
  const listRV = list.metadata?.resourceVersion;
  check(listRV, 'list has no resourceVersion');
  step('list', `app=crud -> ${names.join(',')}`);

  // The generated patch method sends JSON patch by default; the header option makes it a
  // JSON merge patch.
  const patched = await v1.patchNamespacedConfigMap(
    { name: 'crud', namespace: ns, body: { data: { c: 'd', a: null }, metadata: { labels: { patched: 'yes' } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  check(sorted(patched.data) === sorted({ c: 'd' }), `merge patch gave data ${JSON.stringify(patched.data)}`);
  check(patched.metadata.labels?.app === 'crud' && patched.metadata.labels?.patched === 'yes',
    `merge patch gave labels ${JSON.stringify(patched.metadata.labels)}`);
  step('patch', `merge data=${sorted(patched.data)} labels.patched=${patched.metadata.labels.patched}`);

  // Watch from the list's resourceVersion (before the patch above): the patch replays as
  // MODIFIED; a second patch made meanwhile arrives live as another MODIFIED.
  const seen = [];
  let ctrl;
  const watched = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`watch saw no live event in 20s: ${JSON.stringify(seen)}`)), 20000);
    new k8s.Watch(kc)
      .watch(
        `/api/v1/namespaces/${ns}/configmaps`,
        { resourceVersion: listRV, fieldSelector: 'metadata.name=crud', timeoutSeconds: 30 },
        (phase, obj) => {
          seen.push([phase, obj.metadata.name, obj.data ?? {}]);
          step('watch', `${phase} ${obj.metadata.name} data=${sorted(obj.data)}`);
          if (obj.data?.e === 'f') {
            clearTimeout(timer);
            resolve();
          }
        },
        (err) => {
          clearTimeout(timer);
          if (err && err.name !== 'AbortError') reject(err);
          else resolve();
        },
      )
      .then((c) => {
        ctrl = c;
      }, reject);
  });
  await new Promise((r) => setTimeout(r, 1000));
  await v1.patchNamespacedConfigMap(
    { name: 'crud', namespace: ns, body: { data: { e: 'f' } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
  );
  try {
    await watched;
  } finally {
    ctrl?.abort();
  }
  check(seen.some(([p, , d]) => p === 'MODIFIED' && sorted(d) === sorted({ c: 'd' })),
    `watch did not replay the merge patch: ${JSON.stringify(seen)}`);
  check(seen.some(([p, , d]) => p === 'MODIFIED' && d.e === 'f'),
    `watch did not see the patch made meanwhile: ${JSON.stringify(seen)}`);

  await v1.deleteNamespacedConfigMap({ name: 'crud', namespace: ns });
  try {
    await v1.readNamespacedConfigMap({ name: 'crud', namespace: ns });
    throw new Error('configmap still there after delete');
  } catch (e) {
    check(e.code === 404, `get after delete: ${e.code ?? e}`);
  }
  step('delete', 'configmap crud, then get -> 404');

  await v1.deleteNamespace({ name: ns });
  step('cleanup', `deleted namespace ${ns}`);
  step('done', 'ok');
}

if (process.argv.length !== 3) {
  console.error('usage: node crud.mjs KUBECONFIG');
  process.exit(2);
}
main(process.argv[2]).then(
  () => process.exit(0),
  (e) => {
    console.error(`FAIL: ${e?.stack ?? e}${e?.body ? `\n${typeof e.body === 'string' ? e.body : JSON.stringify(e.body)}` : ''}`);
    process.exit(1);
  },
);
