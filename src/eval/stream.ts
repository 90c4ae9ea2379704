/**
 * The evaluation protocol's data (mac-reference §4–5): a stream of documents (deduplicated paragraphs, in stream
 * order) the model adapts to, and questions whose answers are in exactly one document of the stream.
 */

export interface StreamDoc {
  /** Unique within the stream, e.g. "Warsaw#3" (article title # paragraph index). */
  id: string;
  text: string;
  /** The article (or source) the document came from; splits are by this, never by question. */
  article: string;
}

export interface StreamQuestion {
  id: string;
  /** The id of the document that answers it. */
  docId: string;
  question: string;
  /** Reference answers (SQuAD: up to three; the metrics take the max / the shortest). */
  answers: string[];
}

export interface QaStream {
  name: string;
  docs: StreamDoc[];
  questions: StreamQuestion[];
}
