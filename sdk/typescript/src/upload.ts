/**
 * Media upload with progress (`POST /v1/media`). Browsers report upload
 * progress only through XMLHttpRequest; elsewhere (node) the body is a
 * stream whose chunks are counted as the connection takes them.
 */
import { ConfabError, refusal } from "./errors.js";
import type { Upload } from "./protocol.js";

/** What can be uploaded: a Blob (or File) or bytes. */
export type UploadSource = Blob | ArrayBuffer | Uint8Array;

export interface UploadOptions {
  /** The file's name (kept for files, shown to recipients). */
  name?: string;
  /** The declared type; the server decides the kind from the bytes. */
  contentType?: string;
  /** Called with the fraction sent, 0 to 1. */
  onProgress?: (fraction: number) => void;
}

const CHUNK = 64 * 1024;

export async function upload(
  base: string,
  token: string | undefined,
  source: UploadSource,
  options: UploadOptions,
  fetcher: typeof fetch,
): Promise<Upload> {
  const url = base + "/v1/media" + (options.name ? `?name=${encodeURIComponent(options.name)}` : "");
  const type =
    options.contentType ||
    (source instanceof Blob && source.type) ||
    "application/octet-stream";
  const headers: Record<string, string> = { "content-type": type };
  if (token) headers.authorization = `Bearer ${token}`;
  if (typeof XMLHttpRequest !== "undefined") return viaXhr(url, headers, source, options);
  const bytes = source instanceof Blob ? new Uint8Array(await source.arrayBuffer()) : toBytes(source);
  return viaFetch(url, headers, bytes, options, fetcher);
}

function toBytes(source: ArrayBuffer | Uint8Array): Uint8Array {
  return source instanceof Uint8Array ? source : new Uint8Array(source);
}

function viaXhr(
  url: string,
  headers: Record<string, string>,
  source: UploadSource,
  options: UploadOptions,
): Promise<Upload> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) options.onProgress?.(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status === 201) {
        try {
          resolve(JSON.parse(xhr.responseText) as Upload);
        } catch {
          reject(new ConfabError("bad_response", "the upload's answer is not JSON"));
        }
        return;
      }
      reject(refusal(xhr.status, xhr.responseText, "upload"));
    };
    xhr.onerror = () => reject(new ConfabError("network", "the upload's connection failed"));
    xhr.send(source instanceof Uint8Array ? new Blob([source as Uint8Array<ArrayBuffer>]) : source);
  });
}

async function viaFetch(
  url: string,
  headers: Record<string, string>,
  bytes: Uint8Array,
  options: UploadOptions,
  fetcher: typeof fetch,
): Promise<Upload> {
  let offset = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      const chunk = bytes.subarray(offset, offset + CHUNK);
      offset += chunk.length;
      controller.enqueue(chunk);
      options.onProgress?.(offset / bytes.length);
    },
  });
  let resp: Response;
  try {
    // A streamed request body needs `duplex` (not yet in the DOM typings).
    const init = { method: "POST", headers, body, duplex: "half" } as RequestInit;
    resp = await fetcher(url, init);
  } catch (err) {
    throw new ConfabError("network", `upload: ${(err as Error).message}`);
  }
  const text = await resp.text();
  if (resp.status !== 201) throw refusal(resp.status, text, "upload");
  if (bytes.length === 0) options.onProgress?.(1);
  try {
    return JSON.parse(text) as Upload;
  } catch {
    throw new ConfabError("bad_response", "the upload's answer is not JSON");
  }
}
