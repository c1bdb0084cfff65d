/* The notebook side (anywidget): the same mountExplorer as the offline file, with rows asked of Python.
 * Appended to explorer-data.js, explorer-draw.js and explorer.js to make the widget's ES module. */
export default {
  render({ model, el }) {
    const data = JSON.parse(model.get("payload"));
    const pending = new Map();
    let next = 1;
    const onMessage = (msg) => {
      if (msg && msg.type === "row" && pending.has(msg.id)) {
        const resolve = pending.get(msg.id);
        pending.delete(msg.id);
        resolve(msg);
      }
    };
    model.on("msg:custom", onMessage);
    const request = (req) => new Promise((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      model.send({ ...req, type: "row", id });
    });
    const api = mountExplorer(el, data, { request });
    el.minivivitExplorer = api;
    return () => { model.off("msg:custom", onMessage); api.destroy(); };
  },
};
