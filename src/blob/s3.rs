//! S3 backend (AWS S3, Garage, MinIO, Ceph RGW): path-style addressing, custom endpoint.
//! Uploads larger than one part go through multipart upload, so memory stays at one
//! part whatever the object size; a failed upload is aborted and leaves no object.

use super::{BlobError, BlobStore, ByteStream, validate_key};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream as AwsBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// S3 needs parts of at least 5 MiB (except the last).
const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Folder inside the bucket; lets several deployments (or tests) share one bucket.
    pub prefix: String,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("prefix", &self.prefix)
            .finish()
    }
}

pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: String,
}

fn backend<E: std::fmt::Display>(e: E) -> BlobError {
    BlobError::Backend(e.to_string())
}

impl S3Store {
    pub fn new(s: &S3Settings) -> Self {
        let creds = Credentials::new(
            &s.access_key_id,
            &s.secret_access_key,
            None,
            None,
            "lichtkasten-config",
        );
        let mut conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(s.region.clone()))
            .credentials_provider(creds)
            .force_path_style(true)
            // Many S3-compatible servers reject the newer streaming checksum trailers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(ep) = &s.endpoint {
            conf = conf.endpoint_url(ep);
        }
        let prefix = s.prefix.trim_matches('/').to_string();
        S3Store {
            client: Client::from_conf(conf.build()),
            bucket: s.bucket.clone(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            endpoint: s.endpoint.clone().unwrap_or_else(|| "aws".into()),
        }
    }

    fn full_key(&self, key: &str) -> Result<String, BlobError> {
        validate_key(key)?;
        Ok(format!("{}{}", self.prefix, key))
    }

    async fn multipart(
        &self,
        key: &str,
        first: Bytes,
        body: &mut ByteStream,
    ) -> Result<u64, BlobError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(backend)?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| BlobError::Backend("no upload id".into()))?
            .to_string();
        let result: Result<(u64, Vec<CompletedPart>), BlobError> = async {
            let mut parts = Vec::new();
            let mut total = 0u64;
            let mut current = first;
            let mut ended = false;
            let mut number = 1;
            loop {
                // Never poll the body again once it has ended.
                let (following, is_end) = if ended {
                    (Bytes::new(), true)
                } else {
                    fill_part(body).await?
                };
                total += current.len() as u64;
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(AwsBody::from(current))
                    .send()
                    .await
                    .map_err(backend)?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .build(),
                );
                number += 1;
                if following.is_empty() && is_end {
                    break;
                }
                ended = is_end;
                current = following;
            }
            Ok((total, parts))
        }
        .await;
        match result {
            Ok((total, parts)) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(backend)?;
                Ok(total)
            }
            Err(e) => {
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    fn body_stream(body: AwsBody) -> ByteStream {
        Box::pin(futures_util::stream::unfold(body, |mut body| async move {
            match body.next().await {
                Some(Ok(b)) => Some((Ok(b), body)),
                Some(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), body)),
                None => None,
            }
        }))
    }
}

/// Reads up to one part from the stream. Returns the bytes and whether the stream ended.
async fn fill_part(body: &mut ByteStream) -> Result<(Bytes, bool), BlobError> {
    let mut buf = BytesMut::new();
    while buf.len() < PART_SIZE {
        match body.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => return Ok((buf.freeze(), true)),
        }
    }
    Ok((buf.freeze(), false))
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<u64, BlobError> {
        let key = self.full_key(key)?;
        let (first, ended) = fill_part(&mut body).await?;
        if ended {
            let len = first.len() as u64;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(AwsBody::from(first))
                .send()
                .await
                .map_err(backend)?;
            return Ok(len);
        }
        self.multipart(&key, first, &mut body).await
    }

    async fn get(&self, key: &str) -> Result<ByteStream, BlobError> {
        let key = self.full_key(key)?;
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(out) => Ok(Self::body_stream(out.body)),
            Err(e) => Err(map_get_error(e)),
        }
    }

    async fn get_range(&self, key: &str, start: u64, end: u64) -> Result<ByteStream, BlobError> {
        if start >= end {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let key = self.full_key(key)?;
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .range(format!("bytes={}-{}", start, end - 1))
            .send()
            .await
        {
            Ok(out) => Ok(Self::body_stream(out.body)),
            Err(e) => Err(map_get_error(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let key = self.full_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_with_times(&self) -> Result<Vec<(String, i64)>, BlobError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(backend)?;
            for obj in page.contents() {
                if let Some(k) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    let modified = obj.last_modified().map(|t| t.secs()).unwrap_or(0);
                    out.push((k.to_string(), modified));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn health(&self) -> Result<(), BlobError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("s3 bucket {} at {}", self.bucket, self.endpoint)
    }
}

fn map_get_error(
    e: aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::get_object::GetObjectError>,
) -> BlobError {
    if let Some(se) = e.as_service_error()
        && se.is_no_such_key()
    {
        return BlobError::NotFound;
    }
    if let Some(raw) = e.raw_response()
        && raw.status().as_u16() == 404
    {
        return BlobError::NotFound;
    }
    backend(aws_sdk_s3::error::DisplayErrorContext(&e))
}
